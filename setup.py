"""Maps the card's top-level folders onto the `faultlab` import root.

`server/`, `workers/` and `client/` are the packages `faultlab.server`, `faultlab.workers`
and `faultlab.client`; `faultlab/` is the small core shared by all three.
"""

from setuptools import find_packages, setup

ROOTS = {
    "faultlab": "faultlab",
    "faultlab.server": "server",
    "faultlab.workers": "workers",
    "faultlab.client": "client",
}

packages: list[str] = []
for name, path in ROOTS.items():
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(path)]

setup(packages=packages, package_dir=ROOTS, package_data={"faultlab": ["py.typed"], "faultlab.client": ["demo.yaml"]})
