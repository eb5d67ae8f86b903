"""`make bench`: performance figures of the CRM, each against its baseline in the same run."""
