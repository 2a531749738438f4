"""ament_python package setup for marepo_ros (also pip-installable)."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "marepo_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={f"{PACKAGE}.models": ["weights/*.pt", "weights/*.md"],
                  f"{PACKAGE}.localization": ["confidence.json"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="marepo_ros maintainers",
    maintainer_email="marepo-ros@example.org",
    description="Visual relocalization for ROS 2 (ACE-style scene coordinates + RANSAC / marepo).",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "marepo-ros = marepo_ros.cli:main",
            "relocalization_node = marepo_ros.ros.node:main",
        ],
    },
)
