"""`dags`: every DAG built from the test module's `ESTATE` (written to a file, as Airflow reads it),
once per module."""

import pytest

from stella_operators.dag_builder import build_estate_dags


@pytest.fixture(scope="module")
def dags(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("estate") / "estate.yaml"
    path.write_text(request.module.ESTATE)
    return build_estate_dags(path)
