import SwiftMPI
let world = MPI.world
var x: [Float] = [Float(world.rank + 1)]
try world.allreduce(&x)
print("rank \(world.rank)/\(world.size) host \(world.processorName) sum \(x[0])")
