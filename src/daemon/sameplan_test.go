package daemon

import (
	"reflect"
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/src/config"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// TestSamePlanSeesEveryField: changing any one field anywhere in a plan
// (each string, number and bool, a nil pointer set, an element added to a
// list or a map) makes samePlan report a difference, and the plan types
// have nothing its JSON would leave out (unexported fields, funcs,
// interfaces).
func TestSamePlanSeesEveryField(t *testing.T) {
	checkTypes(t, reflect.TypeFor[plan.Plan](), map[reflect.Type]bool{})
	caps := plan.Caps{NFTables: true, Conntrack: true, PPTPHelper: false, PPTPNAT: true, GRETracking: true,
		NFQueue: true, NFTQueueExpr: true, XTNFQueue: true, MapPayload: true, Ctnetlink: true}
	build := func() *plan.Plan {
		c := config.Default()
		c.LogBlocked = true
		p, err := plan.Build(plan.Input{Config: c, Caps: caps,
			Topology: config.Topology{LAN: []string{"br-lan"}, WAN: []string{"wan"}, LANFrom: "zone", WANFrom: "zone"}})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if !samePlan(build(), build()) {
		t.Fatal("two builds of one input differ")
	}
	leaves := 0
	walk(reflect.ValueOf(build()).Elem(), func(reflect.Value) bool { leaves++; return false })
	t.Logf("%d leaves", leaves)
	if leaves < 200 {
		t.Fatalf("only %d leaves: the plan is too small to test with", leaves)
	}
	for i := 0; i < leaves; i++ {
		p := build()
		n := 0
		walk(reflect.ValueOf(p).Elem(), func(v reflect.Value) bool {
			if n++; n-1 != i {
				return false
			}
			mutate(v)
			return true
		})
		if samePlan(build(), p) {
			t.Errorf("leaf %d changed, samePlan says the same", i)
		}
	}
}

func checkTypes(t *testing.T, typ reflect.Type, seen map[reflect.Type]bool) {
	if seen[typ] {
		return
	}
	seen[typ] = true
	switch typ.Kind() {
	case reflect.Struct:
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			if !f.IsExported() || f.Tag.Get("json") == "-" {
				t.Errorf("%s.%s does not show in JSON", typ, f.Name)
			}
			checkTypes(t, f.Type, seen)
		}
	case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
		checkTypes(t, typ.Elem(), seen)
	case reflect.Func, reflect.Chan, reflect.Interface, reflect.UnsafePointer:
		t.Errorf("%s cannot be compared by its JSON", typ)
	}
}

// walk calls f on every leaf of v, in a fixed order, until f returns true.
func walk(v reflect.Value, f func(reflect.Value) bool) bool {
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if walk(v.Field(i), f) {
				return true
			}
		}
		return false
	case reflect.Pointer:
		if v.IsNil() {
			return f(v)
		}
		return walk(v.Elem(), f)
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			if walk(v.Index(i), f) {
				return true
			}
		}
		return f(v) // and the list itself: one more element
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			if walk(v.Index(i), f) {
				return true
			}
		}
		return false
	case reflect.Map:
		return f(v)
	}
	return f(v)
}

func mutate(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(v.Uint() + 1)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
	case reflect.Slice:
		v.Set(reflect.Append(v, reflect.New(v.Type().Elem()).Elem()))
	case reflect.Map:
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		k := reflect.New(v.Type().Key()).Elem()
		if k.Kind() == reflect.String {
			k.SetString("added-by-the-test")
		}
		v.SetMapIndex(k, reflect.New(v.Type().Elem()).Elem())
	default:
		panic("cannot mutate " + v.Type().String())
	}
}
