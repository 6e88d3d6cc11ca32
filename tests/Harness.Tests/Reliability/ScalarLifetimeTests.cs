using System.Reflection;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Harness.Tests.Reliability;

/// <summary>
/// A double or float handed to a TorchSharp op becomes a <c>TorchSharp.Scalar</c> by an implicit conversion; nothing
/// keeps that temporary alive while the native call runs, so a garbage collection at that moment can finalize it
/// and free the native scalar the call is reading (a random <c>toFloat at c10/core/Scalar.h</c> error, or a wrong
/// number, after hours). The rule: every Scalar on these paths is created explicitly and disposed by its owner.
/// This test binds the sources with the C# compiler and lists every implicit conversion to Scalar, and every
/// TorchSharp operator overload that takes a primitive (which converts internally), so a new one cannot slip in.
/// </summary>
[TestClass]
public sealed class ScalarLifetimeTests
{
    /// <summary>Source folders on the training hot path, with a sub-folder filter ("X": only X/, "!X": all but X/).
    /// </summary>
    public static IEnumerable<object[]> Projects =>
    [
        ["Plugins.Optimizers", "Harness.Plugins.Optimizers", ""],
        ["Plugins.Tuners", "Harness.Plugins.Tuners", ""],
        ["Plugins.Probes", "Harness.Plugins.Probes", ""],
        ["Plugins.Models", "Harness.Plugins.Models", ""],
        ["Host", "Harness.Host", ""],
        ["Abstractions", "Harness.Abstractions", ""],
    ];

    [TestMethod]
    [DynamicData(nameof(Projects))]
    public void NoImplicitScalarConversions(string folder, string assembly, string only)
    {
        var found = ImplicitScalars(Path.Combine(Paths.RepoRoot, folder), assembly, only);
        Assert.AreEqual(0, found.Count, $"implicit Scalar conversions (create the Scalar explicitly and keep it alive):\n{string.Join("\n", found)}");
    }

    /// <summary>The scanner itself finds the hazard (so a green result is not a scanner that sees nothing).</summary>
    [TestMethod]
    public void ScannerFindsConversionsAndPrimitiveOperators()
    {
        var dir = Paths.NewTempDirectory("scalar-scan");
        try
        {
            File.WriteAllText(Path.Combine(dir, "A.cs"), """
                using TorchSharp;
                using static TorchSharp.torch;
                static class A
                {
                    static void F(Tensor t, Tensor g, double beta)
                    {
                        t.mul_(beta).add_(g, alpha: 1 - beta);
                        using var b = beta.ToScalar();
                        t.mul_(b);
                        var u = t * 2.0;
                        var q = t.square();
                        double d = q.sum().ToDouble();
                        t.mul_(beta.ToScalar());
                    }
                }
                """);
            var found = ImplicitScalars(dir, "ScanProbe", "");
            Assert.AreEqual(6, found.Count, string.Join("\n", found));
        }
        finally { Directory.Delete(dir, true); }
    }

    private static readonly string GlobalUsings = """
        global using System;
        global using System.Collections.Generic;
        global using System.IO;
        global using System.Linq;
        global using System.Net.Http;
        global using System.Threading;
        global using System.Threading.Tasks;
        """;

    /// <summary>"file:line: code" of every implicit conversion to TorchSharp.Scalar and every TorchSharp operator taking
    /// a primitive operand, in the .cs files under <paramref name="root"/> (under <paramref name="only"/> if set).</summary>
    public static List<string> ImplicitScalars(string root, string assemblyName, string only)
    {
        var files = Directory.GetFiles(root, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}"))
            .Order(StringComparer.Ordinal).ToList();
        var options = new CSharpParseOptions(LanguageVersion.Preview);
        var trees = files.Select(f => CSharpSyntaxTree.ParseText(File.ReadAllText(f), options, f))
            .Append(CSharpSyntaxTree.ParseText(GlobalUsings, options, "GlobalUsings.cs")).ToList();
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Concat(Directory.GetFiles(AppContext.BaseDirectory, "*.dll"))
            .Where(p => Path.GetFileNameWithoutExtension(p) != assemblyName && IsManaged(p))
            .DistinctBy(Path.GetFileName)
            .Select(p => MetadataReference.CreateFromFile(p));
        var compilation = CSharpCompilation.Create(assemblyName, trees, references,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable, allowUnsafe: true));
        var scalar = compilation.GetTypeByMetadataName("TorchSharp.Scalar") ?? throw new InvalidOperationException("TorchSharp.Scalar not resolved");
        var found = new List<string>();
        foreach (var tree in trees)
        {
            string rel = Path.GetRelativePath(root, tree.FilePath);
            if (only.StartsWith('!') ? rel.StartsWith(only[1..] + Path.DirectorySeparatorChar, StringComparison.Ordinal)
                : only != "" && !rel.StartsWith(only + Path.DirectorySeparatorChar, StringComparison.Ordinal)) continue;
            var model = compilation.GetSemanticModel(tree);
            foreach (var node in tree.GetRoot().DescendantNodes())
            {
                string? why = null;
                if (node is ExpressionSyntax e)
                {
                    var conversion = model.GetConversion(e);
                    if (conversion is { IsUserDefined: true, IsImplicit: true, MethodSymbol: { } m }
                        && SymbolEqualityComparer.Default.Equals(m.ContainingType, scalar))
                        why = $"implicit {model.GetTypeInfo(e).Type?.ToDisplayString()} → Scalar";
                }
                if (node is BinaryExpressionSyntax or AssignmentExpressionSyntax or PrefixUnaryExpressionSyntax
                    && model.GetSymbolInfo(node).Symbol is IMethodSymbol { MethodKind: MethodKind.UserDefinedOperator } op
                    && op.ContainingNamespace.ToDisplayString().StartsWith("TorchSharp", StringComparison.Ordinal)
                    && op.Parameters.Any(p => p.Type.SpecialType is >= SpecialType.System_Boolean and <= SpecialType.System_Double))
                    why = $"TorchSharp operator {op.Name} with a primitive operand (it creates a Scalar internally)";
                if (node is InvocationExpressionSyntax or ObjectCreationExpressionSyntax or BinaryExpressionSyntax or AssignmentExpressionSyntax or PrefixUnaryExpressionSyntax
                    && why is null
                    && model.GetSymbolInfo(node).Symbol is IMethodSymbol called
                    && called.ContainingAssembly?.Name == "TorchSharp"
                    && ConvertingInside.Value.Contains((called.ReducedFrom ?? called).OriginalDefinition.MetadataToken))
                    why = $"TorchSharp's {called.ContainingType.Name}.{called.Name} converts a primitive to a Scalar inside";
                if (why is null && node is InvocationExpressionSyntax { Parent: MemberAccessExpressionSyntax or ArgumentSyntax } made
                    && model.GetSymbolInfo(made).Symbol is IMethodSymbol { ContainingAssembly.Name: "TorchSharp" }
                    && SymbolEqualityComparer.Default.Equals(model.GetTypeInfo(made).Type, scalar))
                    why = "a Scalar used as a temporary (nothing disposes it or keeps it alive during the native call)";
                if (why is null) continue;
                int line = node.GetLocation().GetLineSpan().StartLinePosition.Line + 1;
                found.Add($"{rel}:{line}: {why}: {node.ToString().Split('\n')[0].Trim()}");
            }
        }
        return found;
    }

    /// <summary>Metadata tokens of the TorchSharp methods whose own IL calls an implicit conversion to Scalar (e.g.
    /// Tensor.square() => pow(2)): calling them has the same hazard, so our code calls the Scalar overload itself.</summary>
    private static readonly Lazy<HashSet<int>> ConvertingInside = new(() =>
    {
        var asm = typeof(TorchSharp.Scalar).Assembly;
        var module = asm.ManifestModule;
        var opcodes = typeof(System.Reflection.Emit.OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Select(f => (System.Reflection.Emit.OpCode)f.GetValue(null)!).ToDictionary(o => (ushort)o.Value);
        var tokens = new HashSet<int>();
        var callers = new Dictionary<int, HashSet<int>>();   // callee token → tokens of TorchSharp methods calling it
        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        Type[] types;
        try { types = asm.GetTypes(); } catch (ReflectionTypeLoadException e) { types = e.Types.OfType<Type>().ToArray(); }
        foreach (var type in types)
            foreach (var method in type.GetMethods(all).Cast<MethodBase>().Concat(type.GetConstructors(all)))
            {
                byte[]? il;
                try { il = method.GetMethodBody()?.GetILAsByteArray(); } catch (Exception) { continue; }
                if (il is null) continue;
                bool makesScalar = false, disposesScalar = false;
                for (int i = 0; i < il.Length;)
                {
                    ushort code = il[i] == 0xFE ? (ushort)(0xFE00 | il[i + 1]) : il[i];
                    i += il[i] == 0xFE ? 2 : 1;
                    if (!opcodes.TryGetValue(code, out var op)) break;
                    int size = op.OperandType switch
                    {
                        System.Reflection.Emit.OperandType.InlineNone => 0,
                        System.Reflection.Emit.OperandType.ShortInlineBrTarget or System.Reflection.Emit.OperandType.ShortInlineI or System.Reflection.Emit.OperandType.ShortInlineVar => 1,
                        System.Reflection.Emit.OperandType.InlineVar => 2,
                        System.Reflection.Emit.OperandType.InlineI8 or System.Reflection.Emit.OperandType.InlineR => 8,
                        System.Reflection.Emit.OperandType.InlineSwitch => 4 + 4 * BitConverter.ToInt32(il, i),
                        _ => 4,
                    };
                    if (op.OperandType == System.Reflection.Emit.OperandType.InlineMethod)
                    {
                        try
                        {
                            var target = module.ResolveMethod(BitConverter.ToInt32(il, i), type.IsGenericType ? type.GetGenericArguments() : null,
                                method.IsGenericMethod ? method.GetGenericArguments() : null);
                            if (target is { Name: "op_Implicit" } && target.DeclaringType == typeof(TorchSharp.Scalar)) tokens.Add(method.MetadataToken);
                            else if (target is MethodInfo { ReturnType: var rt } && rt == typeof(TorchSharp.Scalar)) makesScalar = true;
                            else if (target is { Name: "Dispose" } && target.DeclaringType == typeof(TorchSharp.Scalar)) disposesScalar = true;
                            else if (target is not null && target.Module == module)
                            {
                                if (!callers.TryGetValue(target.MetadataToken, out var set)) callers[target.MetadataToken] = set = [];
                                set.Add(method.MetadataToken);
                            }
                        }
                        catch (Exception) { }
                    }
                    i += size;
                }
                // A method that obtains a Scalar (Tensor.ToScalar(), x.ToScalar()) and neither returns nor disposes it
                // leaves it to the finalizer while the native call may still read it: Tensor.ToDouble() is
                // ToScalar().ToDouble(), and the temporary can be finalized inside THSTorch_scalar_to_float64.
                bool returnsScalar = method is MethodInfo info && info.ReturnType == typeof(TorchSharp.Scalar);
                if (makesScalar && !disposesScalar && !returnsScalar) tokens.Add(method.MetadataToken);
            }
        // Transitively: operator +(Tensor, Tensor) => add(right) => add(right, 1).
        var queue = new Queue<int>(tokens);
        while (queue.Count > 0)
            foreach (var caller in callers.GetValueOrDefault(queue.Dequeue()) ?? [])
                if (tokens.Add(caller)) queue.Enqueue(caller);
        return tokens;
    });

    private static bool IsManaged(string path)
    {
        try { AssemblyName.GetAssemblyName(path); return true; }
        catch (BadImageFormatException) { return false; }
    }
}
