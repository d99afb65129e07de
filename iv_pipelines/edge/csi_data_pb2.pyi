from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CsiLayout(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CSI_LAYOUT_UNSPECIFIED: _ClassVar[CsiLayout]
    HT20_LLTF_FFT: _ClassVar[CsiLayout]
    HT20_LLTF_CENTRED: _ClassVar[CsiLayout]
    HT20_LLTF_HTLTF_FFT: _ClassVar[CsiLayout]
    HT40_LLTF_HTLTF_FFT: _ClassVar[CsiLayout]
CSI_LAYOUT_UNSPECIFIED: CsiLayout
HT20_LLTF_FFT: CsiLayout
HT20_LLTF_CENTRED: CsiLayout
HT20_LLTF_HTLTF_FFT: CsiLayout
HT40_LLTF_HTLTF_FFT: CsiLayout

class SensingEvent(_message.Message):
    __slots__ = ("type", "confidence", "proof")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[SensingEvent.Type]
        EMPTY: _ClassVar[SensingEvent.Type]
        MOTION: _ClassVar[SensingEvent.Type]
        FALL: _ClassVar[SensingEvent.Type]
    TYPE_UNSPECIFIED: SensingEvent.Type
    EMPTY: SensingEvent.Type
    MOTION: SensingEvent.Type
    FALL: SensingEvent.Type
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    type: SensingEvent.Type
    confidence: float
    proof: bytes
    def __init__(self, type: _Optional[_Union[SensingEvent.Type, str]] = ..., confidence: _Optional[float] = ..., proof: _Optional[bytes] = ...) -> None: ...

class CSIData(_message.Message):
    __slots__ = ("device_id", "seq", "timestamp_us", "layout", "csi", "rssi", "noise_floor", "channel", "rate_hz", "event")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_US_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    CSI_FIELD_NUMBER: _ClassVar[int]
    RSSI_FIELD_NUMBER: _ClassVar[int]
    NOISE_FLOOR_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    seq: int
    timestamp_us: int
    layout: CsiLayout
    csi: bytes
    rssi: int
    noise_floor: int
    channel: int
    rate_hz: int
    event: SensingEvent
    def __init__(self, device_id: _Optional[str] = ..., seq: _Optional[int] = ..., timestamp_us: _Optional[int] = ..., layout: _Optional[_Union[CsiLayout, str]] = ..., csi: _Optional[bytes] = ..., rssi: _Optional[int] = ..., noise_floor: _Optional[int] = ..., channel: _Optional[int] = ..., rate_hz: _Optional[int] = ..., event: _Optional[_Union[SensingEvent, _Mapping]] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("data", "hmac")
    DATA_FIELD_NUMBER: _ClassVar[int]
    HMAC_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    hmac: bytes
    def __init__(self, data: _Optional[bytes] = ..., hmac: _Optional[bytes] = ...) -> None: ...
