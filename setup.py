"""The package's layout for setuptools (everything else is in pyproject.toml): the repository folder is the package
``diffusion_vas`` (ComfyUI loads the same folder as a custom node), and every folder below it with an
``__init__.py`` is one of its subpackages, found here rather than listed, so a new one is never left out of the
wheel. tests/, benchmarks/ and tools/ are no packages (no ``__init__.py``; nothing of the package imports them).
"""

from setuptools import find_namespace_packages, find_packages, setup
from setuptools.command.build_py import build_py

SUBPACKAGES = find_packages(".", exclude=["tests", "tests.*", "benchmarks", "benchmarks.*", "tools", "tools.*",
                                          "build", "build.*"])
# the folders of package data (pyproject.toml's package-data), as setuptools wants them declared
DATA = find_namespace_packages(".", include=["workflows", "example_clips", "example_clips.*"])


class BuildPackage(build_py):
    """``build_py`` without this file: it lies in the package's folder but is no module of the package."""

    def find_package_modules(self, package, package_dir):
        modules = super().find_package_modules(package, package_dir)
        return [m for m in modules if not (package == "diffusion_vas" and m[1] == "setup")]


setup(
    package_dir={"diffusion_vas": "."},
    packages=["diffusion_vas", *(f"diffusion_vas.{name}" for name in SUBPACKAGES + DATA)],
    cmdclass={"build_py": BuildPackage},
)
