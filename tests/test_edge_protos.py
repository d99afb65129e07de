"""The CSIData wire format, one source for Python and the firmware: generated files are not
stale; the C core's tests pass on the host and on RV32IMC under QEMU; a frame the C core
encodes verifies and decodes in Python, and one Python encodes decodes in C; hostile
datagrams are refused with the counter they belong to."""

import shutil
import subprocess
import sys

import numpy as np
import pytest

from iv_pipelines.edge import csi_data_pb2 as pb
from iv_pipelines.edge.frames import MAX_FRAME_BYTES, FrameError, csi_bytes, decode, encode
from tests.conftest import REPO

KEY = b"device-key-0123456789abcdef"  # the C test's key
TEST_DIR = REPO / "firmware" / "test"


def test_generated_files_are_not_stale():
    r = subprocess.run(
        [sys.executable, "scripts/gen_protos.py", "--check"], cwd=REPO, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr


def _make(target: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-s", "-C", str(TEST_DIR), target], capture_output=True, text=True, timeout=300
    )


def test_c_core_on_the_host():
    if not shutil.which("cc"):
        pytest.skip("no C compiler (.ci/run installs gcc)")
    r = _make("host")
    assert r.returncode == 0 and "115 checks, 0 failures" in r.stdout, r.stdout + r.stderr


def test_c_core_on_rv32imc_under_qemu():
    missing = [t for t in ("riscv64-unknown-elf-gcc", "qemu-system-riscv32") if not shutil.which(t)]
    if missing:
        pytest.skip(
            f"{missing} not installed (.ci/run installs gcc-riscv64-unknown-elf, picolibc, qemu-system-misc)"
        )
    r = _make("rv32")  # semihosted output arrives on QEMU's stderr
    assert r.returncode == 0 and "115 checks, 0 failures" in r.stdout + r.stderr, r.stdout + r.stderr
    elf = (TEST_DIR / "build" / "test_core.rv32.elf").read_bytes()
    assert (
        elf[:4] == b"\x7fELF" and elf[4] == 1 and int.from_bytes(elf[18:20], "little") == 243
    )  # 32-bit RISC-V


@pytest.fixture(scope="module")
def host_binary():
    if not shutil.which("cc"):
        pytest.skip("no C compiler")
    assert _make("build/test_core").returncode == 0
    return TEST_DIR / "build" / "test_core"


def test_a_frame_encoded_in_c_verifies_in_python(host_binary):
    hexframe = subprocess.run(
        [host_binary, "--vector"], capture_output=True, text=True, check=True
    ).stdout.strip()
    csi = decode(bytes.fromhex(hexframe), {"esp32c3-a1b2c3": KEY}.get)
    assert (csi.device_id, csi.seq, csi.timestamp_us, csi.layout) == (
        "esp32c3-a1b2c3",
        41,
        1234567890123,
        pb.HT20_LLTF_FFT,
    )
    assert (csi.rssi, csi.noise_floor, csi.channel, csi.rate_hz) == (-57, -92, 6, 100)
    assert csi.event == ("FALL", 0.875) and csi.iq.shape == (64,)
    raw = np.array([(i * 7) % 256 - 128 for i in range(128)], np.int8).reshape(64, 2)
    assert np.array_equal(csi.iq.imag, raw[:, 0]) and np.array_equal(
        csi.iq.real, raw[:, 1]
    )  # (imag, real) pairs
    with pytest.raises(FrameError) as e:
        decode(bytes.fromhex(hexframe), {"esp32c3-a1b2c3": b"another key"}.get)
    assert e.value.kind == "bad_hmac"


def test_a_frame_encoded_in_python_decodes_in_c(host_binary):
    iq = (np.arange(64) - 32) + 1j * (31 - np.arange(64))
    msg = pb.CSIData(
        device_id="py-dev-7",
        seq=4294967295,
        timestamp_us=99,
        layout=pb.HT20_LLTF_FFT,
        csi=csi_bytes(iq),
        rssi=-40,
        channel=11,
    )
    out = subprocess.run([host_binary, "--decode", encode(msg, KEY).hex()], capture_output=True, text=True)
    s = int(np.clip(np.rint(iq.imag), -128, 127).sum() + np.clip(np.rint(iq.real), -128, 127).sum())
    assert out.returncode == 0, out.stdout
    assert out.stdout.strip() == (
        f"device_id=py-dev-7 seq=4294967295 timestamp_us=99 layout=1 csi_len=128 csi_sum={s} rssi=-40 channel=11"
    )
    bad = subprocess.run(
        [host_binary, "--decode", encode(msg, b"stranger").hex()], capture_output=True, text=True
    )
    assert bad.returncode == 1 and bad.stdout.strip() == "error -4"  # CSI_ERR_HMAC


@pytest.mark.parametrize(
    "datagram, kind",
    [
        (b"\x00" * (MAX_FRAME_BYTES + 1), "oversized"),
        (b"\xff\xff\xff\xff", "malformed"),
        (b"", "malformed"),
        (pb.Frame(data=b"\x0a\x03abc", hmac=b"short").SerializeToString(), "malformed"),
        (
            pb.Frame(
                data=pb.CSIData(device_id="unknown").SerializeToString(), hmac=b"\0" * 32
            ).SerializeToString(),
            "bad_hmac",
        ),
    ],
)
def test_hostile_datagrams_are_refused_by_kind(datagram, kind):
    with pytest.raises(FrameError) as e:
        decode(datagram, {"esp32c3-a1b2c3": KEY}.get)
    assert e.value.kind == kind


def test_limits_are_enforced_before_sending():
    with pytest.raises(FrameError, match="limits"):
        encode(pb.CSIData(device_id="d", csi=b"\0" * 386), KEY)
    assert csi_bytes(np.array([300 - 300j, 1.4 + 2.6j])) == bytes(np.array([-128, 127, 3, 1], np.int8))
