"""stella-operators for Airflow's plugins folder (deployments that mount dags/, plugins/ and
include/ and make the package importable from a path instead of pip-installing it).

When stella-operators is pip-installed, Airflow loads the plugin from its `airflow.plugins` entry
point, and this file defines nothing: Airflow registers every AirflowPlugin class it finds in a
plugins-folder module, and a second registration of the same name is reported as a plugin
import error. So the class is bound here only when no entry point provides it.
"""

import stella_operators.entry_points as _entry_points
import stella_operators.plugin as _plugin

if not _entry_points.plugin_entry_point_installed():
    StellaPlugin = _plugin.StellaPlugin
