"""The documentation's numbers come from the runs that wrote them.

`markdown` reads pages (tables, headings, links); `blocks` fills the include and generated
blocks of every page from the study outputs under docs/ and checks them; `tables` renders the
generated tables; `options` writes docs/options.md from the settings dataclasses; `studies` and
`reproduce` rerun the published studies (`kdlab reproduce`, `make reproduce`).
"""

from pathlib import Path

DOCS = Path("docs")  # the documentation folder, relative to the repository root
README = Path("README.md")
STUDIES = DOCS / "studies.toml"  # the published studies, as data
