"""Authentication and authorisation: passwords, signing keys, bearer tokens, the access decision, LDAP."""
