"""What comes back from a PACS, shown for what it is: prior reports (SR of any template, encapsulated PDF)
read-only, with the study's report status taken from them when no local report exists."""
