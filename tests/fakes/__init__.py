"""Local HTTP fakes of the providers collectZ talks to; each answers as the provider documents."""
