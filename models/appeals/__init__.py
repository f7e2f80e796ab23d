"""Appeals: the table and its history, the lifecycle, intake, the desk's actions, access, queues, codes."""
