"""Provider codecs, one module each; this registry is all the rest of the code looks at.

``CODECS`` holds each provider's SMS codec (its account, headers and queries); ``KINDS`` every
(provider, campaign kind) that can be sent over HTTP; ``TRANSPORTS`` those an account can
send over another transport instead (``transport = "smpp"`` in its settings).
:func:`account_codec` is the one to ask when the account is known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dispatcher.providers.base import Codec
from dispatcher.providers.cloudaten import CloudAtenCodec
from dispatcher.providers.cloudaten_voice import CloudAtenVoiceCodec
from dispatcher.providers.cloudsms import CloudSmsCodec
from dispatcher.providers.smsclouds import SmscloudsCodec
from dispatcher.providers.smsclouds_blaster import BlasterCodec
from dispatcher.providers.smsclouds_clic import SmsClicCodec
from dispatcher.providers.smsclouds_email import EmailCodec
from dispatcher.providers.smsclouds_smpp import SmscloudsSmppCodec
from dispatcher.providers.ycloud import YCloudCodec

CODECS: dict[str, Codec] = {
    c.name: c for c in (CloudAtenCodec(), YCloudCodec(), CloudSmsCodec(), SmscloudsCodec())
}
KINDS: dict[tuple[str, str], Codec] = {(c.name, c.kind): c for c in CODECS.values()}
for extra in (CloudAtenVoiceCodec(), BlasterCodec(), EmailCodec(), SmsClicCodec()):
    KINDS[(extra.name, extra.kind)] = extra


TRANSPORTS: dict[tuple[str, str, str], Codec] = {
    (c.name, c.kind, c.transport): c for c in (SmscloudsSmppCodec(),)
}

if TYPE_CHECKING:
    from dispatcher.config import ProviderSettings, Settings


def codec_for(provider: str, kind: str = "sms", transport: str = "http") -> Codec:
    if transport == "http":
        return KINDS[(provider, kind)]
    return TRANSPORTS[(provider, kind, transport)]


def chunk_size(ps: ProviderSettings, codec: Codec) -> int:
    """Recipients per chunk: the provider's setting, within what the codec allows (an
    SMPP account sends one by one, so its chunks are smaller than an HTTP batch's)."""
    return min(ps.chunk_size, codec.max_chunk or ps.chunk_size)


def account_codec(settings: Settings, provider: str, account: str, kind: str = "sms") -> Codec:
    """The codec of ``kind`` for this account's transport (KeyError if it has none)."""
    accounts = settings.provider(provider).accounts
    transport = accounts[account].transport if account in accounts else "http"
    return codec_for(provider, kind, transport)
