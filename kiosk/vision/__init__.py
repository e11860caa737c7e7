"""Image handling for the kiosk: loading, quality checks, lesion finding, preprocessing."""
