enum PlaceholderTasks {}
