"""Old class paths kept for the ``config.yaml`` of runs made before the commands moved to ``zoo.commands``
(their logger is ``zoo.app.runs.RunLogger``), so that ``zoo fit -c OLD_RUN/config.yaml`` still works. Nothing
else lives here."""
