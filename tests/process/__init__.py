"""The command as real processes: flags, signals, the supervisor, --reload, gunicorn's arbiter, the docs' examples."""
