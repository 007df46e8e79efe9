"""What every domain module shares and none owns."""
