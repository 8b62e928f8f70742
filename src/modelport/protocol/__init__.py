"""Open Inference Protocol codecs between wire forms and the core inference types.

- ``rest``: REST bodies, JSON and the binary tensor extension, both directions (public entry).
- ``header``: the JSON header of an inference body, field by field.
- ``tensor_data``: tensor values in JSON form <-> numpy.
- ``binary``: tensor values in binary form <-> numpy, and BYTES element framing.
"""

from __future__ import annotations

__all__: list[str] = []
