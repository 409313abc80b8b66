"""Accounts: users and organisations (one namespace), teams, repository metadata and grants, audit."""
