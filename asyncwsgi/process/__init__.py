"""The command and its processes: flags and settings files, the loop choice, importing the app,
privileges, the supervisor of --workers, --reload and gunicorn's worker class. [main]
An embedding program never imports these."""
