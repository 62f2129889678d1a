import CMPI

/// Element types that map to a predefined MPI datatype.
public protocol MPIScalar: Numeric, Sendable {
    static var mpiDatatype: MPI_Datatype { get }
}

extension Float: MPIScalar { @inlinable public static var mpiDatatype: MPI_Datatype { fkp_type_float() } }
extension Double: MPIScalar { @inlinable public static var mpiDatatype: MPI_Datatype { fkp_type_double() } }
extension Int32: MPIScalar { @inlinable public static var mpiDatatype: MPI_Datatype { fkp_type_int32() } }
extension Int64: MPIScalar { @inlinable public static var mpiDatatype: MPI_Datatype { fkp_type_int64() } }
extension UInt8: MPIScalar { @inlinable public static var mpiDatatype: MPI_Datatype { fkp_type_uint8() } }

/// Reduction operators.
public enum ReduceOp: Sendable {
    case sum, max, min

    public var handle: MPI_Op {
        switch self {
        case .sum: return fkp_op_sum()
        case .max: return fkp_op_max()
        case .min: return fkp_op_min()
        }
    }
}
