// A Kafka producer for the shell device when kcat cannot talk to the broker (kcat 1.7 /
// librdkafka 2.0 cannot parse the embedded Tansu broker's ApiVersions v3 reply).
// Reads one message from stdin; sends it with the key and headers given as arguments.
const { Kafka, logLevel } = require("kafkajs");
const [brokers, topic, key, ...headerArgs] = process.argv.slice(2);
const headers = Object.fromEntries(headerArgs.map((h) => [h.slice(0, h.indexOf("=")), h.slice(h.indexOf("=") + 1)]));
let value = "";
process.stdin.on("data", (d) => (value += d));
process.stdin.on("end", async () => {
  const producer = new Kafka({ clientId: "shell-device", brokers: brokers.split(","), logLevel: logLevel.ERROR }).producer();
  await producer.connect();
  await producer.send({ topic, acks: -1, messages: [{ key, value, headers }] });
  await producer.disconnect();
});
