"""Theme tokens: the three example themes load; a sacred override, an invalid colour and
every unsafe CSS construct are refused with an error naming the token."""

import pytest

from iv_pipelines.errors import InputError
from iv_pipelines.whitelabel.theme import SACRED, load_theme, parse_theme
from tests.conftest import REPO

THEMES = sorted((REPO / "examples" / "themes").glob("*.yaml"))


def test_three_example_themes_load_with_their_css_variables():
    assert [p.stem for p in THEMES] == ["finance", "healthcare", "manufacturing"]
    for p in THEMES:
        t = load_theme(p)
        css = t.css_variables()
        assert css["--iv-primary"] == t.flexible.primary_color and css["--iv-font"] == t.flexible.font_family
        assert t.to_public()["sacred"] == SACRED


BASE = {"id": "acme", "client_id": "acme-healthcare", "name": "Acme"}


@pytest.mark.parametrize(
    "data, words",
    [
        (BASE | {"sacred": {"logo": "mine.svg"}}, "sacred.logo: sacred tokens are fixed"),
        (
            BASE | {"flexible": {"proof_signature": "trust me"}},
            "flexible.proof_signature: proof_signature is a sacred token",
        ),
        (BASE | {"flexible": {"primary_color": "blue"}}, "flexible.primary_color: 'blue' is not a colour"),
        (
            BASE | {"flexible": {"primary_color": "#12345"}},
            "flexible.primary_color: '#12345' is not a colour",
        ),
        (BASE | {"flexible": {"accent_color": "url(https://evil/x.png)"}}, "flexible.accent_color: 'url("),
        (BASE | {"flexible": {"text_color": "expression(alert(1))"}}, "flexible.text_color: 'expression("),
        (BASE | {"flexible": {"primary_color": "#fff; background: red"}}, "flexible.primary_color:"),
        (
            BASE | {"flexible": {"font_family": "Arial</style><script>alert(1)</script>"}},
            "flexible.font_family:",
        ),
        (
            BASE | {"flexible": {"font_family": "'Unclosed, serif"}},
            'flexible.font_family: "\'Unclosed, serif" is not a list',
        ),
        (BASE | {"flexible": {"button_style": "blink"}}, "flexible.button_style: Input should be"),
        (BASE | {"flexible": {"corner_radius_px": 500}}, "flexible.corner_radius_px:"),
        (BASE | {"flexible": {"wallpaper": "#fff"}}, "flexible.wallpaper: Extra inputs are not permitted"),
        (BASE | {"name": "Acme {}"}, "name: 'Acme {}' contains"),
        (BASE | {"id": "Bad Id"}, "id: String should match pattern"),
    ],
)
def test_bad_themes_name_the_token(data, words):
    with pytest.raises(InputError) as e:
        parse_theme(data, "theme.yaml")
    assert any(p.startswith(words) for p in e.value.problems), e.value.problems


def test_theme_files_that_are_not_themes(tmp_path):
    (tmp_path / "a.yaml").write_text("- just\n- a list\n")
    with pytest.raises(InputError, match="a theme is a mapping"):
        load_theme(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("id: [unclosed\n")
    with pytest.raises(InputError, match="not YAML"):
        load_theme(tmp_path / "b.yaml")
    (tmp_path / "c.yaml").write_text("x: " + "a" * 70_000)
    with pytest.raises(InputError, match="at most 64 KiB"):
        load_theme(tmp_path / "c.yaml")
