"""Provider codecs, one module each; this registry is all the rest of the code looks at.

``CODECS`` holds each provider's SMS codec (its account, headers and queries); ``KINDS`` every
(provider, campaign kind) that can be sent.
"""

from __future__ import annotations

from dispatcher.providers.base import Codec
from dispatcher.providers.cloudaten import CloudAtenCodec
from dispatcher.providers.cloudaten_voice import CloudAtenVoiceCodec
from dispatcher.providers.cloudsms import CloudSmsCodec
from dispatcher.providers.smsclouds import SmscloudsCodec
from dispatcher.providers.smsclouds_blaster import BlasterCodec
from dispatcher.providers.smsclouds_clic import SmsClicCodec
from dispatcher.providers.smsclouds_email import EmailCodec
from dispatcher.providers.ycloud import YCloudCodec

CODECS: dict[str, Codec] = {
    c.name: c for c in (CloudAtenCodec(), YCloudCodec(), CloudSmsCodec(), SmscloudsCodec())
}
KINDS: dict[tuple[str, str], Codec] = {(c.name, c.kind): c for c in CODECS.values()}
for extra in (CloudAtenVoiceCodec(), BlasterCodec(), EmailCodec(), SmsClicCodec()):
    KINDS[(extra.name, extra.kind)] = extra


def codec_for(provider: str, kind: str = "sms") -> Codec:
    return KINDS[(provider, kind)]
