"""Pure market-data domain: ticks, their parsing, bars and windows. No I/O, no clock, no environment."""
