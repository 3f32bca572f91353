"""Maps the card's top-level folders onto the `faultlab` import root.

`core/` is the small core package `faultlab` shared by all three; `server/`, `workers/` and
`client/` are the packages `faultlab.server`, `faultlab.workers` and `faultlab.client`. No folder
in the checkout is named `faultlab`, so the repository root on `sys.path` never shadows the
installed package. Contributors install editable in strict mode (a link tree under `build/`
that IDEs and mypy follow): `scripts/setup.sh` does it and re-links when files are added.
"""

from setuptools import find_packages, setup

ROOTS = {
    "faultlab": "core",
    "faultlab.server": "server",
    "faultlab.workers": "workers",
    "faultlab.client": "client",
}

packages: list[str] = []
for name, path in ROOTS.items():
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(path)]

setup(
    packages=packages,
    package_dir=ROOTS,
    package_data={"faultlab": ["py.typed"], "faultlab.client": ["demo.yaml"]},
)
