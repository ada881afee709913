"""The finance department's side: a real consumer of the payment events with its own
consumer group and its own small local state (SQLite under <state>/finance/), the SEPA
credit-transfer export, the settlement report back, monthly reports and the AsyncAPI
document of every topic. It talks to the rest of the system only through Kafka and the
claims service's HTTP API."""
