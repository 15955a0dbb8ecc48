"""Outbound scheduling (APScheduler): daily calls at a contact's local time, campaigns."""
