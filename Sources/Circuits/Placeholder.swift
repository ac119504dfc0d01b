enum PlaceholderCircuits {}
