"""The JVM and Python sides of the stack agree: one Delta version, built for the pinned Spark line."""
from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

from jobs.core.classpath import delta_jars

ROOT = Path(__file__).resolve().parents[1]


def _pom_property(name: str) -> str:
    return re.search(rf"<{re.escape(name)}>([^<]+)</", (ROOT / "conf" / "jars" / "pom.xml").read_text()).group(1)


def _pinned(package: str) -> str:
    return re.search(rf"^{re.escape(package)}==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)


def test_one_delta_version_for_the_jars_and_the_python_package():
    delta = _pom_property("delta.version")
    assert _pinned("delta-spark") == delta == version("delta-spark")
    jar = f"delta-spark_{_pom_property('spark.line')}_{_pom_property('scala.binary')}-{delta}.jar"
    assert jar in [Path(j).name for j in delta_jars()], "make install resolves the jars the pom names"


def test_the_connector_is_built_for_the_installed_spark_line_and_scala():
    import pyspark

    assert _pinned("pyspark") == _pinned("pyspark-client") == pyspark.__version__
    assert pyspark.__version__.startswith(_pom_property("spark.line") + ".")
    jars = [p.name for p in (Path(pyspark.__file__).parent / "jars").glob("scala-library-*.jar")]
    assert jars and all(name.startswith(f"scala-library-{_pom_property('scala.binary')}.") for name in jars)


def test_the_lock_pins_every_requirement_at_its_version_and_is_what_is_installed():
    """conf/requirements.lock (scripts/lock.sh) is what make install and the image install: it must hold each pin
    of requirements.txt unchanged, and the environment the suite runs in must be exactly it."""
    def pins(text: str) -> dict[str, str]:
        found = re.findall(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", text, re.M)
        return {re.sub(r"[-_.]+", "-", name).lower(): pinned for name, pinned in found}

    lock = pins((ROOT / "conf" / "requirements.lock").read_text())
    required = pins((ROOT / "requirements.txt").read_text())
    assert required and {name: lock.get(name) for name in required} == required
    assert {name: version(name) for name in lock} == lock
