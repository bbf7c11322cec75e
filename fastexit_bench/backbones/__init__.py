"""Backbone zoo: named encoders with offline copies, plus any HF hub id or local folder."""
