"""The Airflow plugin: mounts the stella API and the Approvals page into Airflow's API server and UI."""

from airflow.plugins_manager import AirflowPlugin

from stella_operators import listeners
from stella_operators.api.app import app as stella_api
from stella_operators.timetables import FreezeAwareCronTimetable


class StellaPlugin(AirflowPlugin):
    name = "stella_operators"
    fastapi_apps = [{"app": stella_api, "url_prefix": "/stella", "name": "stella-operators"}]
    timetables = [FreezeAwareCronTimetable]
    listeners = [listeners]  # manual changes to a promotion's tasks become audit events (listeners.py)
    external_views = [
        {"name": "Stella releases", "href": "/stella/ui/releases", "destination": "nav",
         "url_route": "stella-releases", "category": "browse"},
        {"name": "Stella approvals", "href": "/stella/ui/approvals", "destination": "nav",
         "url_route": "stella-approvals", "category": "browse"},
    ]
