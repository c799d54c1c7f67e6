#!/usr/bin/env node
// Checks Kubernetes manifests offline, with no cluster:
//
//   node validate.mjs FILE.yaml...        (or a YAML stream on stdin)
//   kubectl kustomize deploy/k8s/base | node deploy/k8s/validate/validate.mjs
//
// Every document goes through two checks, both from kubernetes-models (the
// Kubernetes OpenAPI definitions, bundled in the npm package):
//   1. schema: the package's JSON-schema validator for the document's
//      apiVersion and kind (types, required fields, formats such as
//      resource quantities);
//   2. fields: the document is type-checked by the TypeScript compiler as an
//      object literal of the kind's interface, which rejects every field the
//      API does not define (a misspelt `readinesProbe` passes the schema,
//      which admits unknown fields, but not this check).
// A document whose apiVersion/kind has no model is an error. Exit 0 when all
// documents pass, 1 when any fails, 2 on a usage or read error.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { parseAllDocuments } from "yaml";

const here = path.dirname(fileURLToPath(import.meta.url));

function readInputs(args) {
    if (args.length === 0)
        return [{ name: "<stdin>", text: readFileSync(0, "utf8") }];
    return args.map((f) => ({ name: f, text: readFileSync(f, "utf8") }));
}

// -> [{ where, doc }], where = "FILE#N Kind/name"
function parseDocs(inputs, errors) {
    const docs = [];
    for (const { name, text } of inputs) {
        let n = 0;
        for (const d of parseAllDocuments(text)) {
            n++;
            if (d.errors.length) {
                for (const e of d.errors) errors.push(`${name}#${n}: YAML: ${e.message}`);
                continue;
            }
            const doc = d.toJS();
            if (doc === null || doc === undefined)
                continue;
            const kind = doc?.kind ?? "?";
            const obj = doc?.metadata?.name ?? "?";
            docs.push({ where: `${name}#${n} ${kind}/${obj}`, doc });
        }
    }
    return docs;
}

// "apps/v1" + "Deployment" -> "kubernetes-models/apps/v1/Deployment"; the
// core group ("v1") is the package's top-level v1.
function modelPath(doc) {
    const { apiVersion, kind } = doc ?? {};
    if (typeof apiVersion !== "string" || typeof kind !== "string" ||
        !/^[A-Za-z0-9.\-]+(\/[A-Za-z0-9]+)?$/.test(apiVersion) || !/^[A-Za-z0-9]+$/.test(kind))
        return null;
    return `kubernetes-models/${apiVersion}/${kind}`;
}

// Returns the documents that have a model, valid or not.
async function checkSchema(docs, errors) {
    const found = [];
    for (const d of docs) {
        const spec = modelPath(d.doc);
        if (!spec) {
            errors.push(`${d.where}: no apiVersion/kind`);
            continue;
        }
        let mod;
        try {
            mod = await import(spec);
        } catch {
            errors.push(`${d.where}: no schema for ${d.doc.apiVersion} ${d.doc.kind}`);
            continue;
        }
        const Model = mod[d.doc.kind];
        if (typeof Model !== "function") {
            errors.push(`${d.where}: no schema for ${d.doc.apiVersion} ${d.doc.kind}`);
            continue;
        }
        found.push({ ...d, spec });
        try {
            new Model(d.doc).validate();
        } catch (e) {
            const list = Array.isArray(e.errors) && e.errors.length
                ? e.errors.map((x) => `${x.instancePath || "/"} ${x.message}`)
                : [e.message];
            for (const m of list) errors.push(`${d.where}: schema: ${m}`);
        }
    }
    return found;
}

// One in-memory TypeScript file with one typed constant per document, next
// to node_modules so that the package's type declarations resolve.
function checkFields(docs, errors) {
    if (docs.length === 0)
        return;
    const file = path.join(here, "__manifests__.ts");
    const lines = [];
    const owner = []; // line index -> { doc, first line of its literal }
    docs.forEach((d, i) => {
        lines.push(`import type { I${d.doc.kind} as T${i} } from "${d.spec}";`);
    });
    docs.forEach((d, i) => {
        const body = JSON.stringify(d.doc, null, 2).split("\n");
        const first = lines.length;
        body[0] = `export const d${i}: T${i} = ${body[0]}`;
        body[body.length - 1] += ";";
        for (const l of body) {
            owner[lines.length] = { d, first };
            lines.push(l);
        }
    });
    const source = lines.join("\n") + "\n";

    const options = {
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.NodeNext,
        moduleResolution: ts.ModuleResolutionKind.NodeNext,
        types: [],
    };
    const host = ts.createCompilerHost(options);
    const getSourceFile = host.getSourceFile.bind(host);
    host.getSourceFile = (name, lang, ...rest) =>
        path.resolve(name) === file
            ? ts.createSourceFile(name, source, lang, true)
            : getSourceFile(name, lang, ...rest);
    const fileExists = host.fileExists.bind(host);
    host.fileExists = (name) => path.resolve(name) === file || fileExists(name);
    const readFile = host.readFile.bind(host);
    host.readFile = (name) => (path.resolve(name) === file ? source : readFile(name));

    const program = ts.createProgram([file], options, host);
    for (const diag of ts.getPreEmitDiagnostics(program)) {
        const msg = ts.flattenDiagnosticMessageText(diag.messageText, " ");
        if (!diag.file || path.resolve(diag.file.fileName) !== file) {
            errors.push(`fields: ${msg}`);
            continue;
        }
        const { line } = diag.file.getLineAndCharacterOfPosition(diag.start ?? 0);
        const o = owner[line];
        if (!o) {
            errors.push(`fields: ${msg}`);
            continue;
        }
        errors.push(`${o.d.where}: fields: ${lines[line].trim()}: ${msg}`);
    }
}

async function main() {
    const args = process.argv.slice(2);
    if (args.includes("-h") || args.includes("--help")) {
        console.log("usage: validate.mjs [FILE.yaml...]   (no file: stdin)");
        return 0;
    }
    let inputs;
    try {
        inputs = readInputs(args);
    } catch (e) {
        console.error(`k8s-validate: ${e.message}`);
        return 2;
    }
    const errors = [];
    const docs = parseDocs(inputs, errors);
    const typed = await checkSchema(docs, errors);
    checkFields(typed, errors);
    for (const e of errors) console.error(`k8s-validate: ${e}`);
    if (errors.length) {
        console.error(`k8s-validate: ${errors.length} error(s) in ${docs.length} document(s)`);
        return 1;
    }
    if (docs.length === 0) {
        console.error("k8s-validate: no document to check");
        return 1;
    }
    const kinds = [...new Set(docs.map((d) => d.doc.kind))].sort().join(", ");
    console.log(`k8s-validate: ${docs.length} document(s) valid (${kinds})`);
    return 0;
}

process.exitCode = await main();
