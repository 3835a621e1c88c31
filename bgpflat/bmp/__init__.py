"""``bgpflat bmp``: a BMP monitoring station that records what real routers received."""
