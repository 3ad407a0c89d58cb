// Reads a JSON list of simulations on stdin and prints one decision per line of JSON:
// {"result": "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied" | "error", "detail": ...}.
// The evaluation is @cloud-copilot/iam-simulate's; this file only feeds it (tests/test_iam.py).
import { runSimulation } from '@cloud-copilot/iam-simulate'

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const simulations = JSON.parse(Buffer.concat(chunks).toString())
const out = []
for (const simulation of simulations) {
  const run = await runSimulation(simulation, { simulationMode: 'Strict' })
  if (run.resultType === 'error') {
    out.push({ result: 'error', detail: run.errors })
  } else if (run.resultType === 'single') {
    out.push({ result: run.result.analysis.result })
  } else {
    out.push({ result: run.overallResult, detail: run.results.map((r) => [r.resourcePattern, r.analysis.result]) })
  }
}
process.stdout.write(JSON.stringify(out))
