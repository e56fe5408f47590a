// Checks protocol/schema.json the way third-party tools read it: ajv (draft-07, strict mode,
// every strict option on) compiles it, every example in protocol/examples/ validates against
// the definition of its own frame type, and a broken copy of each (an unknown field added,
// then each required field removed) is rejected. Run by scripts/protocol-check.sh.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import Ajv from "ajv";
import addFormats from "ajv-formats";

const root = process.argv[2] ?? "protocol";
const schema = JSON.parse(readFileSync(join(root, "schema.json"), "utf8"));
const ajv = new Ajv({ strict: true, allErrors: true });
addFormats(ajv);
ajv.addSchema(schema);
const defs = schema.definitions;
let failures = 0;
const fail = (what) => {
  failures += 1;
  console.error(`FAIL ${what}`);
};

const validate = (def) => ajv.getSchema(`${schema.$id}#/definitions/${def}`);
for (const union of ["ClientFrame", "ServerFrame"]) {
  if (!validate(union)) fail(`${union} does not compile`);
}

// Every frame is a distinct payload: no two definitions accept the same example.
let checked = 0;
for (const side of ["client", "server"]) {
  const dir = join(root, "examples", side);
  const names = readdirSync(dir).filter((f) => f.endsWith(".json")).map((f) => f.slice(0, -5));
  const types = Object.keys(defs).filter((k) => k.startsWith(`${side}.`)).map((k) => k.slice(side.length + 1));
  for (const t of types) if (!names.includes(t)) fail(`${side}.${t} has no example`);
  for (const name of names) {
    const own = validate(`${side}.${name}`);
    if (!own) {
      fail(`${side}/${name}.json has no definition ${side}.${name}`);
      continue;
    }
    const example = JSON.parse(readFileSync(join(dir, `${name}.json`), "utf8"));
    if (!own(example)) fail(`${side}/${name}.json: ${ajv.errorsText(own.errors)}`);
    if (!validate(side === "client" ? "ClientFrame" : "ServerFrame")(example)) {
      fail(`${side}/${name}.json is not exactly one ${side} frame`);
    }
    for (const other of types.filter((t) => t !== name)) {
      if (validate(`${side}.${other}`)(example)) fail(`${side}/${name}.json also passes as ${side}.${other}`);
    }
    if (own({ ...example, not_in_the_protocol: true })) fail(`${side}/${name}.json with an unknown field passes`);
    const required = JSON.stringify(defs[`${side}.${name}`]).match(/"required":\[[^\]]*\]/g) ?? [];
    for (const field of new Set(required.flatMap((r) => JSON.parse(r.slice(11))))) {
      if (!(field in example)) continue;
      const { [field]: _dropped, ...broken } = example;
      if (own(broken)) fail(`${side}/${name}.json without its required ${field} passes`);
    }
    checked += 1;
  }
}
if (failures > 0) {
  console.error(`${failures} failure(s)`);
  process.exit(1);
}
console.log(`protocol/schema.json: compiled by ajv (strict); ${checked} examples valid against their own frame, broken copies rejected`);
