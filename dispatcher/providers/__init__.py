"""Provider codecs, one module each; this registry is all the rest of the code looks at."""

from __future__ import annotations

from dispatcher.providers.base import Codec
from dispatcher.providers.cloudaten import CloudAtenCodec
from dispatcher.providers.cloudsms import CloudSmsCodec
from dispatcher.providers.smsclouds import SmscloudsCodec
from dispatcher.providers.ycloud import YCloudCodec

CODECS: dict[str, Codec] = {
    c.name: c for c in (CloudAtenCodec(), YCloudCodec(), CloudSmsCodec(), SmscloudsCodec())
}
