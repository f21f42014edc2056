"""Where payouts and ids are validated: id normalisation, exact payout parsing, and the pandera
model every payout row must satisfy before it is written."""
