"""The subjects' self-service pages: a consumer's, an employee's and a company admin's own view of
their consents, reached by a short-lived signed link the operator's portal mints, served as plain
HTML by the consent service, and recorded through the same use case as the API."""
