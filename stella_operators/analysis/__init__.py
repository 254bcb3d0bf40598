"""Metric analysis for progressive delivery (plain Python): is the new version healthy?"""
