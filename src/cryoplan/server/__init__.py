"""The browser application: an HTTP API (FastAPI) over a store of cases and jobs (SQLite),
job workers, and the static front end (web/, built into server/static/)."""
