"""Airflow timetables shipped by Stella (register them in the plugin's `timetables` list)."""

from stella_operators.timetables.freeze_aware import FreezeAwareCronTimetable

__all__ = ["FreezeAwareCronTimetable"]
