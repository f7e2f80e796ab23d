"""Files of an appeal: the citizen's photos and documents, the department's evidence."""
