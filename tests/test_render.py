"""Personalisation tokens <+B+>…<+F+>."""

from __future__ import annotations

from dispatcher.render import has_tokens, render


def test_tokens_map_to_name_and_fields() -> None:
    text = "Hi <+B+>, code <+C+>/<+D+>/<+E+>/<+F+>"
    fields = {"name": "Ann", "field1": "1", "field2": "2", "field3": "3", "field4": "4"}
    assert render(text, fields) == "Hi Ann, code 1/2/3/4"
    assert has_tokens(text) and not has_tokens("Hi <+A+>")


def test_missing_fields_render_empty_and_plain_text_is_untouched() -> None:
    assert render("Hi <+B+>!", {"field1": "x"}) == "Hi !"
    assert render("Hi <+B+>!", None) == "Hi !"
    assert render("a <+ b +> c", None) == "a <+ b +> c"
