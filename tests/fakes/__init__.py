"""Local fake servers for the outside services, started by tests on 127.0.0.1:0."""
