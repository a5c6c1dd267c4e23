"""Sets of recipient indices written compactly: ``0-99,105,107-120``.

Chunks hold consecutive recipients with a few gaps (invalid numbers, duplicates), so ranges
keep the marks of what may have been sent, and the queue entries that send only some of a
chunk's recipients, a few bytes long where a list would take kilobytes. Lua scripts read the
same format (see :data:`LUA_EACH`).
"""

from __future__ import annotations

from collections.abc import Iterable


def encode(indices: Iterable[int]) -> str:
    """``[3, 1, 2, 7]`` → ``"1-3,7"``; an empty set is ``""``. Indices already one run,
    in order (a whole chunk authorised at once: 25,000 of them), are seen at C speed."""
    got = list(indices)
    if got and got[-1] - got[0] == len(got) - 1 and got == list(range(got[0], got[-1] + 1)):
        return f"{got[0]}" if len(got) == 1 else f"{got[0]}-{got[-1]}"
    parts: list[str] = []
    start = prev = None
    for i in sorted(set(got)):
        if prev is not None and i == prev + 1:
            prev = i
            continue
        if start is not None:
            parts.append(f"{start}" if start == prev else f"{start}-{prev}")
        start = prev = i
    if start is not None:
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ",".join(parts)


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def decode(text: str) -> list[int]:
    """The indices of ``text`` in increasing order; ValueError if it is not ranges."""
    out: list[int] = []
    if not text:
        return out
    for part in text.split(","):
        first, dash, last = part.partition("-")
        if not _digits(first) or (dash and not _digits(last)):
            raise ValueError(f"not an index range: {part!r}")
        a = int(first)
        b = int(last) if dash else a
        if b < a:
            raise ValueError(f"not an index range: {part!r}")
        out.extend(range(a, b + 1))
    return out


#: A Lua function calling ``fn(index)`` for every index of a ranges string.
LUA_EACH = """
local function each_index(ranges, fn)
  for part in string.gmatch(ranges, '[^,]+') do
    local a, b = string.match(part, '^(%d+)%-(%d+)$')
    if a == nil then a = part; b = part end
    for i = tonumber(a), tonumber(b) do fn(i) end
  end
end
"""

#: A Lua function making a ranges string of a list of increasing indices.
LUA_TO_RANGES = """
local function to_ranges(list)
  local parts, a, b = {}, nil, nil
  for _, i in ipairs(list) do
    if b ~= nil and i == b + 1 then b = i
    else
      if a ~= nil then parts[#parts + 1] = (a == b) and tostring(a) or (a .. '-' .. b) end
      a, b = i, i
    end
  end
  if a ~= nil then parts[#parts + 1] = (a == b) and tostring(a) or (a .. '-' .. b) end
  return table.concat(parts, ',')
end
"""
