"""Theme tokens for the Capsule Pin web components.

A theme has two parts:
- **sacred** tokens (`SACRED`): the factory's logo, the proof-signature line and the
  blockchain badge. They are what makes a pin trustworthy, so they are fixed: a client theme
  that sets one is rejected, naming the token;
- **flexible** tokens: what a client may brand (colours, font family, button style, corner
  radius, dashboard layout, density). Every value is validated against a strict grammar (hex
  or rgb()/hsl() colours, a font-family list of names, enumerations, bounded lengths), and
  anything that could escape a CSS custom property — `url(`, `expression(`, `;`, braces,
  backslashes, `</style>`, `@import`, quotes that do not pair — is refused with the token's name.

The web components read flexible tokens only as CSS custom properties (`css_variables`); the
sacred elements are rendered from `SACRED` whatever the theme says.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from iv_pipelines.errors import InputError

SACRED: dict[str, str] = {
    "logo": "industriverse-mark.svg",
    "proof_signature": "Signed lineage · verified by Industriverse",
    "blockchain_badge": "UTID on the ledger",
}
_UNSAFE = re.compile(r"url\(|expression\(|;|[{}\\<>]|@import|javascript:|/\*", re.IGNORECASE)
_COLOR = re.compile(
    r"^(#[0-9a-fA-F]{3}|#[0-9a-fA-F]{6}|rgb\(\s*\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}\s*\)"
    r"|hsl\(\s*\d{1,3}\s*,\s*\d{1,3}%\s*,\s*\d{1,3}%\s*\))$"
)
_FONT = re.compile(r"^[A-Za-z0-9 \-']+(,\s*[A-Za-z0-9 \-']+)*$")


def _safe(value: str) -> str:
    if _UNSAFE.search(value):
        raise ValueError(f"{value!r} contains characters or functions not allowed in a theme value")
    return value


class FlexibleTokens(BaseModel):
    model_config = ConfigDict(extra="forbid")

    primary_color: str = "#0b6e4f"
    accent_color: str = "#f2a541"
    background_color: str = "#ffffff"
    text_color: str = "#1b1b1b"
    alert_color: str = "#c0392b"
    font_family: str = Field(default="Inter, Helvetica, Arial, sans-serif", max_length=120)
    button_style: Literal["rounded", "square", "pill"] = "rounded"
    corner_radius_px: int = Field(default=8, ge=0, le=32)
    dashboard_layout: Literal["grid", "list", "compact"] = "grid"
    density: Literal["comfortable", "compact"] = "comfortable"

    @field_validator("primary_color", "accent_color", "background_color", "text_color", "alert_color")
    @classmethod
    def _color(cls, v: str) -> str:
        _safe(v)
        if not _COLOR.match(v.strip()):
            raise ValueError(f"{v!r} is not a colour (#rgb, #rrggbb, rgb(r, g, b) or hsl(h, s%, l%))")
        return v.strip()

    @field_validator("font_family")
    @classmethod
    def _font(cls, v: str) -> str:
        _safe(v)
        if v.count("'") % 2 or not _FONT.match(v):
            raise ValueError(f"{v!r} is not a list of font names")
        return v


class Theme(BaseModel):
    """A client's theme: its id and flexible tokens. There is no `sacred` field: a theme file
    that has one is rejected (see `load_theme`)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    client_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=120)
    flexible: FlexibleTokens = FlexibleTokens()

    @field_validator("name", "client_id")
    @classmethod
    def _text(cls, v: str) -> str:
        return _safe(v)

    def css_variables(self) -> dict[str, str]:
        """`--iv-*` custom properties for the web components (flexible tokens only)."""
        f = self.flexible
        radius = {"square": 0, "rounded": f.corner_radius_px, "pill": 999}[f.button_style]
        return {
            "--iv-primary": f.primary_color,
            "--iv-accent": f.accent_color,
            "--iv-background": f.background_color,
            "--iv-text": f.text_color,
            "--iv-alert": f.alert_color,
            "--iv-font": f.font_family,
            "--iv-button-radius": f"{radius}px",
            "--iv-radius": f"{f.corner_radius_px}px",
            "--iv-gap": "6px" if f.density == "compact" else "12px",
            "--iv-layout": f.dashboard_layout,
        }

    def to_public(self) -> dict:
        """What the gateway serves: the theme, its CSS variables and the sacred tokens."""
        return self.model_dump() | {"css": self.css_variables(), "sacred": dict(SACRED)}


def parse_theme(data: dict, source: str = "theme") -> Theme:
    """A theme from parsed YAML/JSON; every problem names its token."""
    if not isinstance(data, dict):
        raise InputError(source, ["a theme is a mapping (id, client_id, name, flexible)"])
    problems = []
    sacred = data.get("sacred")
    if sacred is not None:
        names = sorted(sacred) if isinstance(sacred, dict) else ["sacred"]
        problems += [f"sacred.{n}: sacred tokens are fixed and never overridable" for n in names]
    for n in set(SACRED) & set(data.get("flexible") or {}):
        problems.append(f"flexible.{n}: {n} is a sacred token, fixed and never overridable")
    if problems:
        raise InputError(source, problems)
    try:
        return Theme.model_validate({k: v for k, v in data.items() if k != "sacred"})
    except ValidationError as e:
        raise InputError(
            source,
            [
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
                for err in e.errors()
            ],
        ) from None


def load_theme(path: Path) -> Theme:
    path = Path(path)
    if path.stat().st_size > 64 * 1024:
        raise InputError(str(path), ["a theme file is at most 64 KiB"])
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise InputError(str(path), [f"not YAML: {e}"]) from None
    return parse_theme(data, str(path))
