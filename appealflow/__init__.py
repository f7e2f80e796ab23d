"""AppealFlow: workflow and task queue for citizens' appeals."""
