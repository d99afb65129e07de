"""`iv firmware`: an ELF becomes a flashable image (esptool's Python API), the checker reads
it as the ROM bootloader would and says what is wrong, and flashing refuses a bad image
before touching a port. Tested on the RV32IMC ELF of the firmware core's QEMU build, which is
linked for QEMU's `virt` machine, not for an ESP32-C3: the checker must say so."""

import shutil
import subprocess

import pytest
from click.testing import CliRunner

from tests.conftest import REPO

pytest.importorskip("esptool", reason="esptool comes with the `edge` extra (make install)")


@pytest.fixture(scope="module")
def rv32_elf():
    if not (shutil.which("riscv64-unknown-elf-gcc") and shutil.which("make")):
        pytest.skip("no RISC-V toolchain (.ci/run installs gcc-riscv64-unknown-elf and picolibc)")
    r = subprocess.run(
        ["make", "-s", "-C", str(REPO / "firmware" / "test"), "build/test_core.rv32.elf"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    return REPO / "firmware" / "test" / "build" / "test_core.rv32.elf"


def test_image_check_merge_and_refusals(rv32_elf, tmp_path):
    from iv_pipelines.edge.firmware import FirmwareError, build_image, check_image, flash, merge

    rep = build_image(rv32_elf, "esp32c3", tmp_path / "app.bin")
    assert rep.chip_id == 5 and rep.checksum_ok and rep.sha256_ok and len(rep.sha256) == 64
    assert [s["addr"] for s in rep.segments] == [0x80000000, 0x80200000]
    # linked for QEMU virt: honest about it
    assert not rep.ok and all("no memory region of the esp32c3" in p for p in rep.problems)
    bad = bytearray((tmp_path / "app.bin").read_bytes())
    bad[100] ^= 0xFF
    (tmp_path / "bad.bin").write_bytes(bad)
    worse = check_image(tmp_path / "bad.bin", "esp32c3")
    assert (
        "checksum mismatch" in worse.problems
        and "appended SHA-256 does not match the image" in worse.problems
    )
    other = check_image(tmp_path / "app.bin", "esp32s3")  # an ESP32-C3 image is not an S3 image
    assert any(p.startswith("chip id 5 in the header, esp32s3 is") for p in other.problems)
    boot = tmp_path / "boot.bin"
    boot.write_bytes(b"\xe9" + b"\x00" * 0x3FF)
    merged = merge([(0x0, boot), (0x10000, tmp_path / "app.bin")], "esp32c3", tmp_path / "merged.bin")
    assert merged.stat().st_size == 0x10000 + (tmp_path / "app.bin").stat().st_size
    with pytest.raises(FirmwareError, match="overlaps"):
        merge([(0x0, tmp_path / "app.bin"), (0x100, boot)], "esp32c3", tmp_path / "m2.bin")
    with pytest.raises(FirmwareError, match="refusing to flash"):
        flash("/dev/does-not-exist", "esp32c3", [(0x10000, tmp_path / "app.bin")])
    with pytest.raises(FirmwareError, match="unknown chip"):
        check_image(tmp_path / "app.bin", "esp8266")
    with pytest.raises(FirmwareError, match="not an ELF"):
        build_image(boot, "esp32c3", tmp_path / "x.bin")


def test_cli(rv32_elf, tmp_path):
    from iv_app.cli import main

    r = CliRunner().invoke(
        main, ["firmware", "image", str(rv32_elf), "--chip", "esp32c3", "--out", str(tmp_path / "a.bin")]
    )
    assert r.exit_code == 0 and "chip id 5" in r.output and "NO REGION" in r.output
    r = CliRunner().invoke(main, ["firmware", "check", str(tmp_path / "a.bin"), "--chip", "esp32c3"])
    assert r.exit_code == 1 and "problem: segment at 0x80000000" in r.output
    r = CliRunner().invoke(
        main, ["firmware", "merge", "--chip", "esp32c3", "--part", "nonsense", "-o", str(tmp_path / "m.bin")]
    )
    assert r.exit_code != 0 and "OFFSET=FILE" in r.output
