"""Flashable images (esptool's Python API): ELF -> app image for a chip, merge bootloader /
partition table / app into one binary, check an image before flashing, flash a device.

`check_image` reads the image the way the ROM bootloader will: the chip id in its extended
header, every segment and the memory region of the chip it lands in, the XOR checksum and the
appended SHA-256. A segment outside every region of the chip is a problem: the image was not
linked for that chip (e.g. the RV32 QEMU test build), and `flash` refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

CHIPS = ("esp32", "esp32s2", "esp32s3", "esp32c3", "esp32c6", "esp32c5")


class FirmwareError(ValueError):
    pass


@dataclass
class ImageReport:
    path: str
    chip: str
    chip_id: int | None
    entrypoint: int
    segments: list[dict] = field(default_factory=list)  # addr, length, regions
    checksum_ok: bool = False
    sha256_ok: bool | None = None  # None: the image has no appended digest
    sha256: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _chip(chip: str):
    from esptool.targets import CHIP_DEFS

    if chip not in CHIP_DEFS or chip not in CHIPS:
        raise FirmwareError(f"unknown chip {chip!r}; one of {', '.join(CHIPS)}")
    return CHIP_DEFS[chip]


def build_image(
    elf: Path, chip: str, out: Path, flash_mode: str = "dio", flash_size: str = "4MB"
) -> ImageReport:
    """ELF -> a flashable app image for `chip` at `out`, then checked."""
    from esptool import cmds

    _chip(chip)
    if not Path(elf).is_file() or Path(elf).read_bytes()[:4] != b"\x7fELF":
        raise FirmwareError(f"{elf}: not an ELF file")
    out.parent.mkdir(parents=True, exist_ok=True)
    cmds.elf2image(str(elf), chip, output=str(out), flash_mode=flash_mode, flash_size=flash_size)
    return check_image(out, chip)


def check_image(path: Path, chip: str) -> ImageReport:
    from esptool.bin_image import LoadFirmwareImage

    rom = _chip(chip)
    try:
        img = LoadFirmwareImage(chip, str(path))
    except Exception as e:  # noqa: BLE001 (esptool raises several types for a broken image)
        raise FirmwareError(f"{path}: not a {chip} image: {e}") from e
    rep = ImageReport(str(path), chip, getattr(img, "chip_id", None), img.entrypoint)
    if rep.chip_id is not None and rep.chip_id != rom.IMAGE_CHIP_ID:
        rep.problems.append(f"chip id {rep.chip_id} in the header, {chip} is {rom.IMAGE_CHIP_ID}")
    for s in img.segments:
        regions = [name for lo, hi, name in rom.MEMORY_MAP if lo <= s.addr < hi]
        rep.segments.append({"addr": s.addr, "length": len(s.data), "regions": regions})
        if not regions:
            rep.problems.append(
                f"segment at {s.addr:#010x} ({len(s.data)} bytes) is in no memory region of the {chip}"
            )
    rep.checksum_ok = img.checksum == img.calculate_checksum()
    if not rep.checksum_ok:
        rep.problems.append("checksum mismatch")
    if img.stored_digest is not None:
        rep.sha256 = img.stored_digest.hex()
        rep.sha256_ok = img.stored_digest == img.calc_digest
        if not rep.sha256_ok:
            rep.problems.append("appended SHA-256 does not match the image")
    return rep


def merge(parts: list[tuple[int, Path]], chip: str, out: Path) -> Path:
    """Bootloader, partition table and app (offset, file) -> one binary flashed at 0."""
    from esptool import cmds

    _chip(chip)
    for addr, p in parts:
        if not Path(p).is_file():
            raise FirmwareError(f"{p}: no such file (for offset {addr:#x})")
    spans = sorted((a, a + Path(p).stat().st_size, str(p)) for a, p in parts)
    for (a0, e0, p0), (a1, _e1, p1) in zip(spans, spans[1:], strict=False):
        if a1 < e0:
            raise FirmwareError(f"{p1} at {a1:#x} overlaps {p0} ({a0:#x}..{e0:#x})")
    out.parent.mkdir(parents=True, exist_ok=True)
    cmds.merge_bin([(a, str(p)) for a, p in parts], chip, output=str(out))
    return out


def flash(port: str, chip: str, parts: list[tuple[int, Path]], baud: int = 460800) -> None:
    """`esptool write-flash` on a real device, after every app image in `parts` checks out."""
    import esptool

    for addr, p in parts:
        if addr >= 0x10000:  # the app partition: the image the bootloader will verify
            rep = check_image(Path(p), chip)
            if not rep.ok:
                raise FirmwareError(f"{p}: refusing to flash: {'; '.join(rep.problems)}")
    args = ["--chip", chip, "--port", port, "--baud", str(baud), "write-flash"]
    for addr, p in parts:
        args += [hex(addr), str(p)]
    esptool.main(args)
