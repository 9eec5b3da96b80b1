"""What each file is: pure, versioned, registered analyzers (bytes in, findings out)."""
