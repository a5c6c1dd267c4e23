"""Provider codecs, one module each; this registry is all the rest of the code looks at."""

from __future__ import annotations

from dispatcher.providers.base import Codec
from dispatcher.providers.cloudaten import CloudAtenCodec

CODECS: dict[str, Codec] = {
    CloudAtenCodec.name: CloudAtenCodec(),
}


def codec(name: str) -> Codec:
    return CODECS[name]
